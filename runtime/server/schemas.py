"""Request and response models: the OpenAPI spec is generated from these.

``/v1/embeddings`` follows OpenAI's embeddings API (``input``, ``model``,
``encoding_format``, ``usage``) and extends it with image and text+image inputs and
an ``instruction``. Unknown fields are refused (a typo must not be ignored silently),
except OpenAI's ``user``, which is accepted and ignored. Limits that are configurable
per server (text length, items per request, image size) are checked by the handlers
and stated in the field descriptions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

_INT64 = 2**63 - 1
#: An item id: an int (int64 range) or a non-empty string.
ItemId = (
    Annotated[StrictInt, Field(ge=-_INT64 - 1, le=_INT64)]
    | Annotated[StrictStr, Field(min_length=1, max_length=512)]
)
FilterValue = (
    StrictStr | Annotated[StrictInt, Field(ge=-_INT64 - 1, le=_INT64)] | StrictFloat | StrictBool
)
#: A metadata field name, or a dotted path into nested objects ("source.lang").
FilterKey = Annotated[
    str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", max_length=256)
]

_TEXT = "Text to embed (at most the server's max_text_chars characters; the model truncates "
_TEXT += "to its max_seq_length tokens)."
_IMAGE = "An image as a base64 data URL, e.g. 'data:image/png;base64,iVBOR...' (PNG, JPEG, "
_IMAGE += "WEBP, GIF or BMP; bounded by the server's max_image_bytes and max_image_pixels). "
_IMAGE += "Needs a bundle whose modalities include 'image' (else 400 unsupported_modality). "
_IMAGE += "Transparency is composited onto the model's background, as for image files."
_INSTRUCTION = "Task instruction conditioning the query (e.g. 'Given a question, retrieve "
_INSTRUCTION += "passages that answer it'); not pooled into the vector. Omit for candidates. "
_INSTRUCTION += "Applies to texts, images and text+image pairs alike (an image with an "
_INSTRUCTION += "instruction is embedded as a pair with the empty text)."
#: A 2x2 red PNG: the examples in the spec are requests the server answers with 200.
EXAMPLE_IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAYAAABytg0kAAAAFElEQVR42mO8o6Hxn4"
    "GBgYGJAQoAIZwCL4LkSsUAAAAASUVORK5CYII="
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _text_or_image(schema: dict[str, Any]) -> None:
    """State the "text, image or both" rule (a model validator) in the JSON schema too."""
    schema["anyOf"] = [
        {"required": [name], "properties": {name: {"type": "string"}}} for name in ("text", "image")
    ]


_CONTENT = ConfigDict(extra="forbid", json_schema_extra=_text_or_image)


class ErrorDetail(_Model):
    """What went wrong."""

    type: str = Field(description="Machine-readable kind, e.g. 'invalid_request', 'unauthorized'.")
    message: str = Field(description="Human-readable explanation naming the bad field.")
    field: str | None = Field(
        description="Path of the offending request field, e.g. 'input[2].image'; null if none."
    )


class ErrorResponse(_Model):
    """Every error response has this shape."""

    error: ErrorDetail = Field(description="The error.")


class InputItem(_Model):
    """One input that is not plain text: an image, or a text+image pair embedded as one."""

    model_config = _CONTENT

    text: StrictStr | None = Field(default=None, description=_TEXT)
    image: StrictStr | None = Field(default=None, description=_IMAGE)

    @model_validator(mode="after")
    def _needs_content(self) -> InputItem:
        if self.text is None and self.image is None:
            raise ValueError("an input item needs 'text', 'image' or both")
        return self


class EmbeddingRequest(_Model):
    """OpenAI-compatible embeddings request, extended with images and an instruction."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"input": ["how do I catch an exception"]},
                {
                    "input": [
                        "a red square",
                        {"image": EXAMPLE_IMAGE},
                        {"text": "the same, in blue", "image": EXAMPLE_IMAGE},
                    ],
                    "instruction": "Find this image changed as the text describes.",
                },
            ]
        },
    )
    input: StrictStr | Annotated[list[StrictStr | InputItem], Field(min_length=1)] = Field(
        description="A string, or a non-empty list of strings and/or {text, image} items "
        "(at most the server's max_items)."
    )
    model: StrictStr | None = Field(
        default=None, description="Model name; if given it must be the served bundle's name."
    )
    encoding_format: Literal["float", "base64"] = Field(
        default="float",
        description="'float': a list of numbers; 'base64': little-endian float32 bytes, "
        "base64-encoded (as OpenAI does).",
    )
    dimensions: StrictInt | None = Field(
        default=None, ge=1, description="If given, must equal the model's dimension."
    )
    user: StrictStr | None = Field(default=None, description="Accepted for OpenAI compatibility.")
    instruction: StrictStr | None = Field(default=None, description=_INSTRUCTION)


class Embedding(_Model):
    """One vector, at the position of its input."""

    object: Literal["embedding"] = Field(default="embedding", description="Always 'embedding'.")
    index: int = Field(description="Position of the input in the request.")
    embedding: list[float] | str = Field(
        description="Unit-norm vector: a list of floats, or base64 of little-endian float32."
    )


class Usage(_Model):
    """Tokens the model processed (images count zero text tokens)."""

    prompt_tokens: int = Field(description="Text tokens, special tokens included, truncated.")
    total_tokens: int = Field(description="Same as prompt_tokens (embeddings generate nothing).")


class EmbeddingResponse(_Model):
    """OpenAI-compatible embeddings response."""

    object: Literal["list"] = Field(default="list", description="Always 'list'.")
    data: list[Embedding] = Field(description="One vector per input, in input order.")
    model: str = Field(description="Name of the bundle that embedded the inputs.")
    usage: Usage = Field(description="Tokens processed.")


class SearchRequest(_Model):
    """Search the index with a text, an image, or both (embedded as one fused query)."""

    model_config = _CONTENT

    text: StrictStr | None = Field(default=None, description=_TEXT)
    image: StrictStr | None = Field(default=None, description=_IMAGE)
    k: StrictInt = Field(
        default=10, ge=1, description="Hits to return (at most the server's max_k, default 1000)."
    )
    filter: dict[FilterKey, FilterValue] | None = Field(
        default=None,
        description="Only items whose metadata has every one of these fields equal to the "
        "given value (a dotted key looks inside nested objects; numbers compare by value, a "
        "string matches only a string, a boolean only a boolean).",
    )
    instruction: StrictStr | None = Field(default=None, description=_INSTRUCTION)

    @model_validator(mode="after")
    def _needs_query(self) -> SearchRequest:
        if self.text is None and self.image is None:
            raise ValueError("a search needs 'text', 'image' or both")
        return self


class SearchHit(_Model):
    """One indexed item, best first."""

    id: int | str = Field(description="The item's id.")
    score: float = Field(description="Cosine similarity to the query (higher is better).")
    text: str | None = Field(description="The item's text, if it was stored with one.")
    metadata: dict[str, Any] | None = Field(description="The item's metadata, if any.")


class SearchResponse(_Model):
    """The hits of one search."""

    hits: list[SearchHit] = Field(description="At most k hits, best first.")
    model: str = Field(description="Name of the bundle that embedded the query.")
    usage: Usage = Field(description="Tokens processed for the query.")


class IndexItem(_Model):
    """An item to add: an id, content to embed (text, image or both), and metadata."""

    model_config = _CONTENT

    id: ItemId = Field(description="Unique id: int64 or a string of 1..512 characters.")
    text: StrictStr | None = Field(default=None, description=_TEXT + " Stored with the item.")
    image: StrictStr | None = Field(
        default=None, description=_IMAGE + " Not stored; keep a reference in metadata."
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="JSON object stored with the item, usable in search filters."
    )

    @model_validator(mode="after")
    def _needs_content(self) -> IndexItem:
        if self.text is None and self.image is None:
            raise ValueError("an item needs 'text', 'image' or both")
        return self


class AddItemsRequest(_Model):
    """Items to embed and add; all or nothing."""

    items: list[IndexItem] = Field(
        min_length=1, description="At most the server's max_items; ids must be new."
    )


class AddItemsResponse(_Model):
    """What an add did."""

    added: int = Field(description="Items added.")
    count: int = Field(description="Items in the index afterwards.")


class DeleteItemsRequest(_Model):
    """Ids to remove; all or nothing (an unknown id changes nothing)."""

    ids: list[ItemId] = Field(min_length=1, description="At most the server's max_items.")


class DeleteItemsResponse(_Model):
    """What a delete did."""

    deleted: int = Field(description="Items removed.")
    count: int = Field(description="Items in the index afterwards.")


class HealthResponse(_Model):
    """Liveness plus what is being served."""

    status: Literal["ok"] = Field(default="ok", description="Always 'ok' when answering.")
    model: str = Field(description="Name of the served bundle.")
    dim: int = Field(description="Vector dimension.")
    modalities: list[str] = Field(description="Input kinds: 'text', 'image', 'text+image'.")
    index_items: int = Field(description="Items in the index.")
    batching: bool = Field(description="Whether dynamic micro-batching is on.")

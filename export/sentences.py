"""The fixed texts every export is checked on: varied topics, lengths and scripts.

``PARITY_TEXTS`` holds short queries, ordinary sentences, code, numbers, non-English text and
a few long paragraphs (well over 256 word pieces) that exercise truncation.
"""

from __future__ import annotations

_SENTENCES: tuple[str, ...] = (
    "How do I reverse a list in Python?",
    "weather tomorrow",
    "A man is playing a guitar on a street corner while people walk past.",
    "The quarterly report shows revenue grew by 12% compared with last year.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "She left the keys on the kitchen table before catching the early train.",
    "What is the capital of Australia?",
    "Canberra was chosen as a compromise between Sydney and Melbourne.",
    "def add(a, b):\n    return a + b",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 3;",
    "Error: connection refused (errno 111) while contacting 10.0.0.12:5432",
    "The mitochondria is the powerhouse of the cell.",
    "Dogs are loyal companions and need daily exercise.",
    "A cat sleeps in a patch of warm sunlight on the windowsill.",
    "Interest rates were left unchanged by the central bank on Thursday.",
    "Le chat dort sur le canapé depuis ce matin.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "El museo abre a las diez y cierra a las seis de la tarde.",
    "東京は日本の首都です。",
    "Привет, как дела?",
    "🙂🚀 launch day!",
    "ok",
    "N/A",
    "1234567890",
    "The treaty was signed in 1648, ending the Thirty Years' War.",
    "Preheat the oven to 200 degrees and bake the bread for forty minutes.",
    "Use a binary search tree when you need ordered keys with logarithmic lookups.",
    "The patient reported mild headaches and occasional dizziness after the new medication.",
    "Solar panels generate less electricity on cloudy winter days.",
    "Our team will release the next version after the security audit is complete.",
    "Can a neural network learn to sort numbers?",
    "The river flooded the village after three days of heavy rain.",
    "Press Ctrl+C to copy the selected text to the clipboard.",
    "Mount Everest is the highest mountain above sea level.",
    "Gradient descent updates the weights in the direction that reduces the loss.",
    "He apologised for the delay and promised to send the documents by Friday.",
    "A symphony orchestra usually has strings, woodwinds, brass and percussion sections.",
    "The library lends e-books for three weeks at a time.",
    "Vaccines train the immune system to recognise a pathogen without causing disease.",
    "Is it safe to eat raw cookie dough?",
    "The stock fell sharply after the company missed its earnings forecast.",
    "An HNSW index trades a little recall for much faster approximate nearest neighbour search.",
    "Two children are building a sandcastle at the beach.",
    "The committee postponed the vote until more data is available.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Refactor the parser so each grammar rule lives in its own function.",
    "The film won three awards, including best director.",
    "Traffic on the northern motorway is backed up for six kilometres.",
    "Remember to water the tomatoes every evening during the heatwave.",
    "Quantum computers use qubits that can be in a superposition of states.",
    "The hotel room had a view of the harbour and the old lighthouse.",
    "Which programming language is best for data analysis?",
    "Shakespeare wrote Hamlet around the year 1600.",
    "The museum's new exhibition focuses on ancient Egyptian jewellery.",
    "To reset your password, click the link we sent to your email address.",
    "A woman is slicing onions in a busy restaurant kitchen.",
    "The algorithm runs in O(n log n) time and uses O(n) extra memory.",
    "Coffee prices rose after a poor harvest in Brazil.",
    "Please keep your seatbelt fastened while the sign is illuminated.",
    "The volcano erupted, sending ash several kilometres into the sky.",
)


def _paragraph(start: int, count: int) -> str:
    """A long text: ``count`` consecutive sentences joined (wraps around the list)."""
    n = len(_SENTENCES)
    return " ".join(_SENTENCES[(start + i) % n] for i in range(count))


# Paragraphs of 20-40 sentences tokenise to far more than 256 word pieces.
_LONG: tuple[str, ...] = tuple(_paragraph(s, c) for s, c in ((24, 24), (2, 30), (40, 40), (11, 20)))

PARITY_TEXTS: tuple[str, ...] = _SENTENCES + _LONG
"""The export's parity set (64 texts, 4 of them longer than 256 tokens)."""

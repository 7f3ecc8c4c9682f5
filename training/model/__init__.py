"""The multimodal encoder: architectures as JSON configs, built by one factory."""

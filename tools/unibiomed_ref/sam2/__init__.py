"""SAM2 (Hiera image encoder, prompt encoder, mask decoder, memory encoder and attention)."""

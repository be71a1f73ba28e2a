"""Steps-to-go distance, reward and success detection read off a frozen EFM; the reward node."""

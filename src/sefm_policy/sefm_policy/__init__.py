"""The embodied foundation model (tokenizers, prompts, PaliGemma model, sampling, checkpoints) and the policy node."""

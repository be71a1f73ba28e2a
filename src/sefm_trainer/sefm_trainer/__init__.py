"""Episode bags, Stage 1 SFT and Stage 2 REINFORCE; recorder and trainer nodes."""

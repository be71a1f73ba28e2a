"""What every sefm node shares, without torch: topic names, QoS and node plumbing, frame assembly,
image conversion, typed configs, and the episode protocol."""

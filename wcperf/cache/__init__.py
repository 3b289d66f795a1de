"""Two-tier query cache: in-process L1 over Redis L2, invalidated by table generations."""

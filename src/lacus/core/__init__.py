"""Domain logic on an explicit connection. Nothing here commits: the caller owns the transaction."""

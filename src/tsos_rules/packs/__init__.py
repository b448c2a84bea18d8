"""Built-in rule packs, registered through the same hook as third-party packs."""

"""Source adapters: each turns one kind of on-disk dataset into splits of SourceImage."""

"""leedl: the LeeDL tutorial experiments, one command per figure."""

"""The peers Kathikon is measured against, one module each, all with the same measurement commands."""

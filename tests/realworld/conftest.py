"""The corpus notebooks are test material, not nbval tests of their own."""

collect_ignore_glob = ["notebooks/*"]

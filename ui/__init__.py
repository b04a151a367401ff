"""The demo page, one module per part: common (models, limits, checks), lyric (rendering), generate (the writer)."""

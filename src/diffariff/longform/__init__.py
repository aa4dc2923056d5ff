"""Long contexts and stems with memory bounded by one codec chunk: block-wise loudness
(:mod:`.loudness`), encode (:mod:`.encode`), decode (:mod:`.decode`), two-pass writing (:mod:`.writer`) and
the Accompanist mixin that streams a generation to files (:mod:`.stream`)."""

"""Lead scorer: an example Services AI plugin that scores new leads."""

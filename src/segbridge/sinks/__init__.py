"""What a destination (a sink) and the run engine agree on, so that applications never import
the run engine: the calls handed over (``calls``) and what a delivery returns (``contracts``)."""

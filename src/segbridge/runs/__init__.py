"""The run engine: plan, produce, deliver, count, checkpoint; one entry point, execute()."""

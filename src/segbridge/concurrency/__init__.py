"""The concurrency governor: how many requests may be in flight per connection pool."""

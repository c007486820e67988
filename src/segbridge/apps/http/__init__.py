"""The HTTP application: read records from a REST API, page after page."""

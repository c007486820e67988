"""What every export shares: the record contract, the record caps, export errors."""

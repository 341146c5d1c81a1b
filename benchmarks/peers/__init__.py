"""Reference implementations of peer libraries' designs, timed side by side with ours in
the asv benchmarks (benchmarks/) and the pytest benchmarks (tests/benchmarks/)."""

"""Side-by-side benchmarks: our code and the reference tools in one run, reported as ratios."""

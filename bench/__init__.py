"""The benchmark harness of issue 7 (``make bench``): see performance.md section 8."""

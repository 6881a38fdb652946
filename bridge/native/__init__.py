"""The native side: what a SOURCE is (sources) and loading it into a native model with its declarations
(loading)."""

"""A `streamlit` package that only starts the benchmark upstream (scripts/bench/upstream.py).

FluxLit starts its UI child as `python -m streamlit run SCRIPT --server.port P
--server.address A ...`; with scripts/bench/standin first on PYTHONPATH that command runs
upstream.py on that address and port instead of Streamlit. The script is not run.
"""

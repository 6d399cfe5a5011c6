"""`python -m streamlit ...`: the stand-in's command line."""

import os
import sys

from streamlit._cli import main

status = main()
sys.stdout.flush()
sys.stderr.flush()
# Script runs may still be blocked in worker threads (an API call waiting for its timeout), and
# a normal exit would wait for them. The server has already closed every connection by now.
os._exit(status)

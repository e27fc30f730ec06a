"""The Unitwise app's code: the Streamlit entry script, queries, calculations, charts."""

from pathlib import Path

PAGES = Path(__file__).resolve().parent.parent / "pages"  # one script per page (st.navigation)

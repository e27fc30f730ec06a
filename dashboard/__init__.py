"""The Unitwise app's code: the Streamlit entry script, queries, calculations, charts."""

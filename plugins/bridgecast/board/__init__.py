"""The control room: the status board inside Airflow's UI (plugin: plugins/bridgecast_board.py)."""

"""The stream agent: consoles and packet captures of the labs on this host (`python -m webapp.agent`, as root).

It listens on the channel layer, so terminal bytes and packet summaries travel over Redis like every other
message, and the same path works when the agent runs on another host than daphne. See service.py.
"""

"""Publishing channels (portal = WordPress REST, fanpage = Graph API, press = SMTP) behind one interface."""

"""The bot's HTTP edge (issue 12): a small aiohttp.web server on the bot's own event loop."""

"""dancenow: "do as I do" motion transfer (Everybody Dance Now) as a usable tool."""

__version__ = "0.1.0"

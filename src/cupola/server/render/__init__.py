"""Protocol renderers at the server edge: a run's typed events and outcome (runtime/events.py)
and classified errors (:func:`cupola.exceptions.classify`) written as Responses SSE, Chat
Completions JSON and chunks, and Anthropic Messages JSON and events."""

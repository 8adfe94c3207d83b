"""The services that routes and the CLI both call: one function per operation (create an
agent or toolbox version, run a response, index and search files). Routes parse and render;
the CLI applies files through the same calls."""

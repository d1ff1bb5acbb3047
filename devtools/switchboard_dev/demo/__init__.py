"""The local demo: a web page where browsers meet in a room, joined through an endpoint that
only the dev tooling serves (on 127.0.0.1) with an API key limited to the `demo` namespace."""

"""Test-only upstream for e2e/frontproxy: a WSGI application on Python's
standard wsgiref server (no third-party packages).

    python3 wsgi_upstream.py 127.0.0.1:PORT

It answers every request with a JSON object that says what the application
acted on, as a typical Python stack would read the request:

  upstream  "wsgiref", the marker that the request reached the application
  acted     true when a route served the request (false: 404)
  method    the method as the application saw it: REQUEST_METHOD upper-cased
            (werkzeug's Request.method does this), or the method of an
            X-HTTP-Method-Override header on a POST (Rack::MethodOverride,
            Symfony, Django middlewares)
  route     the path the application routed: the target of an X-Original-URL
            or X-Rewrite-URL header when present (Symfony's old IIS support),
            else PATH_INFO; then decoded once more, as behind a decoding hop
            (an NGINX proxy_pass with a URI part); cut at "#" (werkzeug splits
            the fragment off the URL); ";" path parameters dropped (servlet
            containers); dot segments and "//" resolved; a trailing "/"
            ignored (Flask's strict_slashes=False)
  environ   every HTTP_* variable: wsgiref maps a header name to
            HTTP_<NAME> with "-" turned into "_" and upper-cased, so
            X-Auth-Roles and X_Auth_Roles land in the same variable, values
            joined with ","
  identity  the user, roles and subject as the application reads them:
            HTTP_X_AUTH_USERNAME, HTTP_X_AUTH_ROLES, HTTP_X_AUTH_SUBJECT, and,
            when those are absent, the X-Forwarded-User or Remote-User headers
            of other front proxies (oauth2-proxy, Apache)

The union of these equivalences is deliberately wider than any single
framework: what keygate lets through must be allowed for every reading a
real stack applies.
"""

import json
import posixpath
import socketserver
import sys
import urllib.parse
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

OVERRIDE_HEADERS = ("HTTP_X_HTTP_METHOD_OVERRIDE", "HTTP_X_HTTP_METHOD", "HTTP_X_METHOD_OVERRIDE")
ROUTING_HEADERS = ("HTTP_X_ORIGINAL_URL", "HTTP_X_REWRITE_URL")
USER_FALLBACKS = ("HTTP_X_FORWARDED_USER", "HTTP_REMOTE_USER", "HTTP_X_REMOTE_USER", "HTTP_X_AUTH_REQUEST_USER")


def effective_method(environ):
    method = environ["REQUEST_METHOD"].upper()
    if method == "POST":
        for key in OVERRIDE_HEADERS:
            if environ.get(key):
                return environ[key].strip().upper()
    return method


def effective_route(environ):
    path = environ.get("PATH_INFO", "")
    for key in ROUTING_HEADERS:
        if environ.get(key):
            path = urllib.parse.unquote(environ[key].split("?", 1)[0], "iso-8859-1")
            break
    path = urllib.parse.unquote(path, "iso-8859-1")
    path = path.split("#", 1)[0]
    path = "/".join(segment.split(";", 1)[0] for segment in path.split("/"))
    if not path.startswith("/"):
        path = "/" + path
    path = posixpath.normpath(path)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    if len(path) > 1:
        path = path.rstrip("/")
    return path


def match(method, route):
    """Returns the name of the route serving (method, route), or None."""
    parts = route.strip("/").split("/")
    if parts[0] in ("public", "api", "admin"):
        return parts[0]
    if route == "/settings" and method in ("GET", "HEAD", "POST"):
        return "settings"
    if len(parts) == 2 and parts[0] == "orders" and method in ("GET", "HEAD", "DELETE"):
        return "order-delete" if method == "DELETE" else "order"
    return None


def identity(environ):
    user = environ.get("HTTP_X_AUTH_USERNAME")
    if user is None:
        for key in USER_FALLBACKS:
            if key in environ:
                user = environ[key]
                break
    return {
        "user": user,
        "roles": environ.get("HTTP_X_AUTH_ROLES"),
        "subject": environ.get("HTTP_X_AUTH_SUBJECT"),
    }


def app(environ, start_response):
    method = effective_method(environ)
    route = effective_route(environ)
    name = match(method, route)
    body = json.dumps({
        "upstream": "wsgiref",
        "acted": name is not None,
        "name": name,
        "method": method,
        "route": route,
        "environ": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        "identity": identity(environ),
    }).encode()
    status = "200 OK" if name is not None else "404 Not Found"
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def main():
    host, _, port = sys.argv[1].rpartition(":")
    server = make_server(host, int(port), app, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""What every response tells the browser, and how much a request may send.

A few lines in the app factory rather than a library: the policy is one fixed set of headers
(the pages use no inline script or style, no third-party assets and no frames), so a
dependency that builds them from options would add more than it saves, and the headers stay
readable here in one place.

- ``Content-Security-Policy``: scripts, styles, images and fonts from this site only (plus
  ``data:`` images for the certificate's QR code), no plugins, no ``<base>`` rewriting,
  forms post only to this site (and, with the Stripe gateway, to Stripe's hosted checkout
  that the checkout redirects to), and ``frame-ancestors 'none'``: no other site can frame
  the checkout or the back office (clickjacking).
- ``X-Frame-Options: DENY`` for browsers that predate ``frame-ancestors``;
  ``X-Content-Type-Options: nosniff``; ``Referrer-Policy: strict-origin-when-cross-origin``
  (order references in URLs never leave the site); ``Cross-Origin-Opener-Policy``.
- ``Strict-Transport-Security`` when ``CARBON_ENV=production`` (served over HTTPS only).
- ``MAX_CONTENT_LENGTH`` (``CARBON_MAX_CONTENT_LENGTH``, 1 MiB by default): a larger body is
  a 413 before any view reads it. The origin registry's CSV upload raises its own limit for
  that one endpoint.

A view may set its own value for any of these headers; the defaults fill in the rest.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_login import current_user

from . import access

DEFAULT_MAX_CONTENT_LENGTH = 1024 * 1024
HSTS = "max-age=63072000; includeSubDomains"
STRIPE_CHECKOUT = "https://checkout.stripe.com"


def content_security_policy(app: Flask) -> str:
    form_action = "'self'"
    if app.config.get("PAYMENT_GATEWAY") == "stripe":
        form_action += f" {STRIPE_CHECKOUT}"
    return "; ".join((
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        f"form-action {form_action}",
        "frame-ancestors 'none'",
    ))


def large_bodies() -> dict[str, int]:
    """Endpoints that take more than MAX_CONTENT_LENGTH: the origin registry's export."""
    from .origin import MAX_FILE_BYTES

    return {"origin_ops.import_file": MAX_FILE_BYTES + 1024 * 1024}


def register(app: Flask) -> None:
    if not app.config.get("MAX_CONTENT_LENGTH"):
        app.config["MAX_CONTENT_LENGTH"] = DEFAULT_MAX_CONTENT_LENGTH
    headers = {
        "Content-Security-Policy": content_security_policy(app),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if app.config.get("ENV") == "production":
        headers["Strict-Transport-Security"] = HSTS

    larger_bodies = large_bodies()

    def _body_limit() -> None:
        # First of all before_request functions: CSRF protection reads the form before any
        # blueprint's own hook could raise the limit. Only an operator may send the larger
        # body: anyone else is held to the default before the form is read.
        larger = larger_bodies.get(request.endpoint or "")
        if larger is not None and access.is_operator(current_user):
            request.max_content_length = larger

    app.before_request_funcs.setdefault(None, []).insert(0, _body_limit)

    @app.after_request
    def _protect(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

// Test-only upstream for e2e/frontproxy: Express (version pinned in
// package-lock.json) with its default routing, which is not strict (a
// trailing slash is ignored: /settings/ is /settings) and not case
// sensitive (/ADMIN/users is /admin/users).
//
//   NODE_PATH=.cache/node/node_modules node app.js 127.0.0.1:PORT
//
// Every answer is JSON: upstream ("express", the marker that the request
// reached the application), acted (a route served it), name (which), method
// (req.method), route (the route's path written in its own lower-case
// spelling, with the parameters Express decoded), headers (req.headers as
// Node parsed them) and identity (X-Auth-Username, X-Auth-Roles and
// X-Auth-Subject as req.get reads them).
'use strict';

const express = require('express');

const app = express();

function serve(name, path) {
  return (req, res) => {
    res.json({
      upstream: 'express',
      acted: true,
      name,
      method: req.method,
      route: path(req.params),
      headers: req.headers,
      identity: {
        user: req.get('X-Auth-Username') ?? null,
        roles: req.get('X-Auth-Roles') ?? null,
        subject: req.get('X-Auth-Subject') ?? null,
      },
    });
  };
}

const rest = (prefix) => (p) => [prefix, ...(p.rest ?? [])].filter((s) => s !== '').join('/');

app.all('/public{/*rest}', serve('public', rest('/public')));
app.all('/api{/*rest}', serve('api', rest('/api')));
app.all('/admin{/*rest}', serve('admin', rest('/admin')));
app.get('/settings', serve('settings', () => '/settings'));
app.post('/settings', serve('settings', () => '/settings'));
app.get('/orders/:id', serve('order', (p) => '/orders/' + p.id));
app.delete('/orders/:id', serve('order-delete', (p) => '/orders/' + p.id));
app.use((req, res) => {
  res.status(404).json({ upstream: 'express', acted: false, method: req.method, route: req.path, headers: req.headers });
});

const addr = process.argv[2];
const i = addr.lastIndexOf(':');
app.listen(Number(addr.slice(i + 1)), addr.slice(0, i));

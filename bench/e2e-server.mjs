// An Express 5 server with one authenticated JSON endpoint, its auth middleware either
// hoot-core's verifyToken (`hoot-core`) or Hoot's own (`hoot-js`: jsonwebtoken.decode for the
// kid, then jsonwebtoken.verify with the PEM jwk-to-pem made at startup). Everything else is the
// same. Reports its port, then serves until disconnected.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

import express from 'express'

import { hootJsVerifier } from './tokens.mjs'

const require = createRequire(import.meta.url)
const [kind, privateKeyPath, jwksPath] = process.argv.slice(2)
const unauthorized = (res) =>
  res.status(401).json({ success: false, error: 'Unauthorized', message: 'Missing or invalid authentication token' })

function middleware() {
  if (kind === 'hoot-core') {
    const { loadKeys, verifyToken } = require('../lib/index.js')
    loadKeys({ privateKeyPath, jwksPath })
    return (req, res, next) => {
      const token = req.headers['x-hoot-token']
      if (!token) return unauthorized(res)
      const result = verifyToken(String(token))
      if (!result.valid) return unauthorized(res)
      req.userId = result.userId
      req.portkeyContext = result.portkey
      next()
    }
  }
  const verify = hootJsVerifier(JSON.parse(readFileSync(jwksPath, 'utf8')))
  return (req, res, next) => {
    const token = req.headers['x-hoot-token']
    if (!token) return unauthorized(res)
    try {
      const { userId, portkey } = verify(token)
      req.userId = userId
      req.portkeyContext = portkey
      next()
    } catch {
      unauthorized(res)
    }
  }
}

const app = express()
app.use(express.json())
app.use(middleware())
app.get('/api/whoami', (req, res) => res.json({ success: true, userId: req.userId, portkey: req.portkeyContext }))
const server = app.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
process.on('disconnect', () => server.close(() => process.exit(0)))

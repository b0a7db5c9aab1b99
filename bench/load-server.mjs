// The Express example (examples/express/server.mjs) with three routes added behind its own auth
// middleware, for the load test: who am I, save tokens, read tokens. Reports its port and, on
// request, its RSS.
import { createApp } from '../examples/express/server.mjs'
import hoot from '../lib/index.js'

const app = createApp()
app.get('/load/whoami', (req, res) => res.json({ userId: req.userId }))
app.put('/load/tokens/:serverId', (req, res) => {
  new hoot.OAuthStore(req.userId).saveTokens(req.params.serverId, req.body)
  res.json({ saved: true })
})
app.get('/load/tokens/:serverId', (req, res) => {
  const tokens = new hoot.OAuthStore(req.userId).tokens(req.params.serverId)
  if (tokens === undefined) return res.status(404).json({ error: 'not found' })
  res.json(tokens)
})
// Any error is a 500 with no details, as a production server would answer.
app.use((error, req, res, next) => {
  console.error(error)
  res.status(500).json({ error: 'internal' })
})
hoot.loadKeys()
const server = app.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
process.on('message', (message) => {
  if (message === 'rss') process.send({ rss: process.memoryUsage().rss })
})
process.on('disconnect', () => server.close(() => process.exit(0)))

// One of the other processes writing the same database during the load test: saves tokens for
// its own users under fresh server ids, one every 2 ms (a busy neighbour, not a flood that holds
// the write lock for good), until told to stop; then reports every save that returned.
import hoot from '../lib/index.js'

const [index, users] = [Number(process.argv[2]), Number(process.argv[3])]
const stores = Array.from(
  { length: users },
  (_, u) => new hoot.OAuthStore(`00000000-0000-4000-8000-${String(index * 100000 + u).padStart(12, '0')}`),
)
const acknowledged = []
let running = true
let errors = 0
process.on('message', (message) => {
  if (message === 'stop') running = false
})
function save() {
  {
    const seq = acknowledged.length + errors
    const u = seq % users
    try {
      stores[u].saveTokens(`writer-${index}-${seq}`, {
        access_token: `w${index}-${seq}`,
        refresh_token: 'r'.repeat(64),
      })
      acknowledged.push([stores[u].userId, `writer-${index}-${seq}`, `w${index}-${seq}`])
    } catch (e) {
      errors++
      console.error(`writer ${index}: ${e.code} ${e.message}`)
    }
  }
  if (running) setTimeout(save, 2)
  else process.send({ acknowledged, errors }, () => process.exit(0))
}
save()

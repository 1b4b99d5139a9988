package outbox

import "github.com/twmb/franz-go/pkg/kgo"

// SetAfterPublish installs the test hook that runs between a batch's commit
// and its delete; an error from it ends Run, as a crash there would.
func SetAfterPublish(r *Relay, f func() error) { r.afterPublish = f }

// SetBeforeCommit installs the test hook that runs between a batch's
// produce and its commit; an error from it fails the produce, so the
// transaction is aborted and the batch retried.
func SetBeforeCommit(r *Relay, f func() error) { r.beforeCommit = f }

// SetIdempotentOnly makes r publish without transactions (benchmarks: what
// the transaction per batch costs).
func SetIdempotentOnly(r *Relay) { r.idempotentOnly = true }

// DefaultTransactionalID exposes the default transactional id's derivation.
var DefaultTransactionalID = defaultTransactionalID

// WithClientOpts adds opts to the options of r's producers: the tests
// route a relay through a proxy they can cut.
func WithClientOpts(r *Relay, opts ...kgo.Opt) { r.extraOpts = opts }

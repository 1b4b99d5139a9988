package outbox

// SetAfterPublish installs the test hook that runs between a batch's publish
// and its delete; an error from it ends Run, as a crash there would.
func SetAfterPublish(r *Relay, f func() error) { r.afterPublish = f }

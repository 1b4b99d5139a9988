package consume

import "github.com/twmb/franz-go/pkg/kgo"

// WithClientOpts adds opts to the options of c's group member client: the
// tests route a member through a proxy they can cut.
func WithClientOpts(c *Consumer, opts ...kgo.Opt) { c.extraOpts = opts }

package durablestreams

// The defaults, under exported names for the external tests. Users read
// them in the docs of the fields they fill; TestDefaultsShowTheirValues
// keeps those docs and these values together.
const (
	DefaultLinger              = defaultLinger
	DefaultMaxBatchBytes       = defaultMaxBatchBytes
	DefaultMaxBufferedBytes    = defaultMaxBufferedBytes
	DefaultCloseTimeout        = defaultCloseTimeout
	DefaultIdleProducerTimeout = defaultIdleProducerTimeout
	DefaultNackResendDelay     = defaultNackResendDelay
	DefaultLiveTimeout         = defaultLiveTimeout
	DefaultMaxReadBytes        = defaultMaxReadBytes
	DefaultHandoverTimeout     = defaultHandoverTimeout
	DefaultSessionTimeout      = defaultSessionTimeout
	DefaultHeartbeatInterval   = defaultHeartbeatInterval
	DefaultRequestTimeout      = defaultRequestTimeout
	DefaultRotateEvery         = defaultRotateEvery
	DefaultMaxFrameBytes       = defaultMaxFrameBytes
)

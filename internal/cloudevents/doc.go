// Package cloudevents holds the CloudEvents wire details behind the root
// package's CloudEventsMarshaler: the mapping of a message to a
// structured-mode event (JSON format, spec 1.0) and back (Codec), the
// one-to-one escaping of metadata keys into extension attribute names, and
// the parsing of an event. The marshaler, its options and its errors stay
// in the root package; this package returns plain errors whose text the
// marshaler reports as the reason.
package cloudevents

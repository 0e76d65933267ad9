package jsonscan

// Cursor walks complete JSON text one piece at a time, for decoders of a
// known shape (the message envelope): they read the structure they expect
// and let Value skip or take the rest. It does not check UTF-8.
type Cursor struct {
	data     []byte
	pos      int
	maxDepth int
	sc       scanner
}

// Reset starts c on data; values may nest maxDepth levels.
func (c *Cursor) Reset(data []byte, maxDepth int) {
	c.data, c.pos, c.maxDepth = data, 0, maxDepth
	c.sc.data = nil
}

// Offset is the position of c in its data.
func (c *Cursor) Offset() int { return c.pos }

// SkipSpace moves past JSON whitespace.
func (c *Cursor) SkipSpace() {
	for c.pos < len(c.data) && isSpace(c.data[c.pos]) {
		c.pos++
	}
}

// Peek returns the byte at the cursor; ok is false at the end.
func (c *Cursor) Peek() (b byte, ok bool) {
	if c.pos >= len(c.data) {
		return 0, false
	}
	return c.data[c.pos], true
}

// Consume moves past b if it is the next byte.
func (c *Cursor) Consume(b byte) bool {
	if c.pos < len(c.data) && c.data[c.pos] == b {
		c.pos++
		return true
	}
	return false
}

// AtEnd reports whether nothing is left.
func (c *Cursor) AtEnd() bool { return c.pos == len(c.data) }

// String scans one JSON string at the cursor and returns it with its
// quotes, and whether it holds escapes (see AppendUnquoted).
func (c *Cursor) String() (raw []byte, escaped bool, err error) {
	if c.pos >= len(c.data) || c.data[c.pos] != '"' {
		return nil, false, c.Fail("expected a string")
	}
	s := &c.sc
	s.data, s.pos, s.final, s.escaped, s.reason = c.data[c.pos:], 1, true, false, ""
	if s.str() == resFail {
		err = s.err(c.pos)
		c.pos += s.pos
		return nil, false, err
	}
	raw = c.data[c.pos : c.pos+s.pos]
	c.pos += s.pos
	return raw, s.escaped, nil
}

// Value scans one JSON value at the cursor and returns its bytes, which
// share memory with the data.
func (c *Cursor) Value() ([]byte, error) {
	start := c.pos
	c.sc.reset(c.data[start:], true, c.maxDepth)
	if c.sc.run() == resFail {
		c.pos = start + c.sc.pos
		return nil, c.sc.err(start)
	}
	c.pos = start + c.sc.pos
	return c.data[start:c.pos], nil
}

// Fail returns a *SyntaxError for reason at the cursor.
func (c *Cursor) Fail(reason string) *SyntaxError {
	return &SyntaxError{Offset: c.pos, Reason: reason}
}

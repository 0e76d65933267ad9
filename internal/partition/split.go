package partition

// Split groups the indices of a call's count messages by their partition
// of n, key(i) being message i's key: the partitions in the order the
// call first names them, each with its messages' indices in call order.
func Split(count int, key func(i int) string, n int) (order []int, idx map[int][]int) {
	idx = make(map[int][]int)
	for i := range count {
		k := Of(key(i), n)
		if _, ok := idx[k]; !ok {
			order = append(order, k)
		}
		idx[k] = append(idx[k], i)
	}
	return order, idx
}

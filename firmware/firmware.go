package firmware

// Backend names, as Info.Name and the configuration's backend key use them.
const (
	Generic = "generic"
	ICE     = "ice"
	MLX5    = "mlx5"
)

// ForDriver names the backend that serves a PF bound to driver, for
// `backend: auto`: ice for the E810's ice, mlx5 for mlx5_core, generic for
// any other driver (igb, ixgbe, i40e, ...).
func ForDriver(driver string) string {
	switch driver {
	case "ice":
		return ICE
	case "mlx5_core":
		return MLX5
	}
	return Generic
}

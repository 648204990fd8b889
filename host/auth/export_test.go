package auth

// SetTestHook sets the hook that sees each verification arrive (HookArrive) and start holding
// its slots (HookVerify); the returned function removes it. Set it before the verifications
// it watches begin, and remove it after they ended.
func SetTestHook(f func(stage, user string)) (restore func()) {
	testHook.Store(&f)
	return func() { testHook.Store(nil) }
}

// The hook's stages.
const (
	HookArrive = hookArrive
	HookVerify = hookVerify
)

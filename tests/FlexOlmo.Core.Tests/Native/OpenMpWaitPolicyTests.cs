using FlexOlmo.Core.Native;

namespace FlexOlmo.Core.Tests.Native;

public sealed class OpenMpWaitPolicyTests
{
    [Fact]
    public void Initialize_GivesLibgompAShortSpin_UnlessTheUserChoseAPolicy()
    {
        TorchRuntime.EnsureInitialized();

        var userPolicy = Environment.GetEnvironmentVariable("OMP_WAIT_POLICY");
        var userSpin = Environment.GetEnvironmentVariable("GOMP_SPINCOUNT");
        if (string.IsNullOrEmpty(userPolicy) && string.IsNullOrEmpty(userSpin))
        {
            Assert.Equal(OpenMpWaitPolicy.SpinCount, NativeEnvironment.Get("GOMP_SPINCOUNT"));
        }
        else
        {
            // The user's choice stands: nothing was overwritten.
            Assert.Equal(string.IsNullOrEmpty(userSpin) ? null : userSpin, NativeEnvironment.Get("GOMP_SPINCOUNT"));
        }
    }
}

namespace FlexOlmo.Formats;

/// <summary>
/// An error a user can cause (a bad file, option, recipe or request). Its message names the file, field or
/// request and says how to fix it; the CLI prints it on one line without a stack trace.
/// </summary>
public class FlexOlmoException : Exception
{
    public FlexOlmoException(string message)
        : base(message)
    {
    }

    public FlexOlmoException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

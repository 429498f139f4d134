namespace Platform.Hosting.Problems;

/// <summary>
/// What an exception thrown by a library below the endpoints means to the client, or null when this mapping does not
/// know it. A host part registers one for its library's exceptions (the event store's lost race is a 409).
/// </summary>
public delegate ProblemException? ExceptionProblem(Exception exception);

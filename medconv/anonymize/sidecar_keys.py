"""The JSON sidecar keys that anonymize keeps: the one table to extend.

A sidecar keeps only acquisition keys known here (at any depth), every other key is dropped
unless --keep-descriptors. Keys that identify a person, place, device or time (the DICOM profile's
keywords it does not keep: PatientName, InstitutionName, DeviceSerialNumber, StationName,
AcquisitionTime ...) are dropped even when listed here; DESCRIPTORS (free text typed by people)
are kept only with --keep-descriptors.

Sources: the BIDS specification's sidecar keys for MRI (common metadata, anat, func, dwi, fmap,
perf/ASL, quantitative MRI, MR spectroscopy), PET and the CT keys dcm2niix writes, plus the keys of
the sidecars medconv writes itself (medconv.dicom.sidecar.KEYS, added at import).
"""
from __future__ import annotations

_BIDS_MRI = """
Manufacturer ManufacturersModelName DeviceSerialNumber StationName SoftwareVersions MagneticFieldStrength
ReceiveCoilName ReceiveCoilActiveElements GradientSetType MRTransmitCoilSequence MatrixCoilMode
CoilCombinationMethod InstitutionName InstitutionAddress InstitutionalDepartmentName
PulseSequenceType ScanningSequence SequenceVariant ScanOptions SequenceName PulseSequenceDetails
NonlinearGradientCorrection MRAcquisitionType MTState MTOffsetFrequency MTPulseBandwidth MTNumberOfPulses
MTPulseShape MTPulseDuration SpoilingState SpoilingType SpoilingRFPhaseIncrement SpoilingGradientMoment
SpoilingGradientDuration NumberShots ParallelReductionFactorInPlane ParallelReductionFactorOutOfPlane
ParallelAcquisitionTechnique PartialFourier PartialFourierDirection PhaseEncodingDirection
EffectiveEchoSpacing TotalReadoutTime MixingTime EchoTime InversionTime SliceTiming SliceEncodingDirection
DwellTime FlipAngle NegativeContrast MultibandAccelerationFactor AnatomicalLandmarkCoordinates
RepetitionTime VolumeTiming TaskName TaskDescription Instructions CogAtlasID CogPOID DelayTime
AcquisitionDuration DelayAfterTrigger NumberOfVolumesDiscardedByScanner NumberOfVolumesDiscardedByUser
StimulusPresentation OperatingSystem SoftwareName SoftwareRRID SoftwareVersion Code HeadStabilization
ScreenDistance ScreenRefreshRate ScreenResolution ScreenSize
IntendedFor B0FieldIdentifier B0FieldSource EchoTime1 EchoTime2 Units MultipartID
ArterialSpinLabelingType PostLabelingDelay BackgroundSuppression BackgroundSuppressionNumberPulses
BackgroundSuppressionPulseTime M0Type TotalAcquiredPairs VascularCrushing VascularCrushingVENC
AcquisitionVoxelSize LabelingLocationDescription LabelingOrientation LabelingDistance LabelingPulseAverageGradient
LabelingPulseMaximumGradient LabelingPulseAverageB1 LabelingPulseDuration LabelingPulseFlipAngle
LabelingPulseInterval PCASLType CASLType LabelingDuration LabelingSlabThickness BolusCutOffFlag
BolusCutOffDelayTime BolusCutOffTechnique RepetitionTimePreparation RepetitionTimeExcitation M0Estimate
LabelingEfficiency
EchoTrainLength InversionTimes SpoilingRFPhaseIncrement MTRatio ResonantNucleus SpectrometerFrequency
SpectralWidth WaterReferenceScan NumberOfSpectralPoints
BodyPart BodyPartDetails BodyPartDetailsOntology SampleEnvironment SampleEmbedding SampleFixation
SampleStaining SamplePrimaryAntibody SampleSecondaryAntibody
Sources SpatialReference SkullStripped Type Description RawSources Resolution Density
"""

_BIDS_PET = """
TracerName TracerRadionuclide InjectedRadioactivity InjectedRadioactivityUnits InjectedMass
InjectedMassUnits SpecificRadioactivity SpecificRadioactivityUnits ModeOfAdministration
TracerMolecularWeight TracerMolecularWeightUnits InjectedMassPerWeight InjectedMassPerWeightUnits
SpecificRadioactivityMeasTime MolarActivity MolarActivityUnits MolarActivityMeasTime InfusionRadioactivity
InfusionStart InfusionSpeed InfusionSpeedUnits InjectedVolume Purity PharmaceuticalName
PharmaceuticalDoseAmount PharmaceuticalDoseUnits PharmaceuticalDoseRegimen PharmaceuticalDoseTime
TracerRadLex TracerSNOMED TimeZero ScanStart InjectionStart FrameTimesStart FrameDuration InjectionEnd
AcquisitionMode ImageDecayCorrected ImageDecayCorrectionTime ReconMethodName ReconMethodParameterLabels
ReconMethodParameterUnits ReconMethodParameterValues ReconFilterType ReconFilterSize AttenuationCorrection
ReconMethodImplementationVersion AttenuationCorrectionMethodReference ScaleFactor ScatterFraction
DecayCorrectionFactor DoseCalibrationFactor PromptRate SinglesRate RandomRate FrameReferenceTime
BodyWeight BodyWeightUnit Anaesthesia CASNumber DecayCorrection
"""

# CT and other keys dcm2niix writes (its sidecars are what most BIDS trees hold)
_DCM2NIIX = """
Modality ImagingFrequency PatientPosition SeriesDescription ProtocolName ImageType ImageTypeText RawImage
SeriesNumber AcquisitionNumber SliceThickness SpacingBetweenSlices SAR EchoNumber PercentPhaseFOV
PercentSampling PhaseEncodingSteps PhaseEncodingStepsOutOfPlane AcquisitionMatrixPE ReconMatrixPE
BandwidthPerPixelPhaseEncode PixelBandwidth ShimSetting TxRefAmp PhaseResolution BaseResolution
ImageOrientationPatientDICOM ImageOrientationText InPlanePhaseEncodingDirectionDICOM ConversionSoftware
ConversionSoftwareVersion DerivedVendorReportedEchoSpacing EstimatedEffectiveEchoSpacing
EstimatedTotalReadoutTime BodyPartExamined ScanningSequence SequenceName MRAcquisitionType
SeriesDescription AcquisitionVoxelSize FrameDuration Dcm2bidsVersion BidsGuess
XRayExposure XRayTubeCurrent ExposureTime KVP ConvolutionKernel ReconstructionDiameter GantryDetectorTilt
TableHeight TablePosition DataCollectionDiameter DistanceSourceToDetector DistanceSourceToPatient
ExposureModulationType CTDIvol SpiralPitchFactor SingleCollimationWidth TotalCollimationWidth
FilterType GeneratorPower FocalSpots RevolutionTime ReconstructionMethod ScatterCorrectionMethod
RandomsCorrectionMethod AttenuationCorrectionMethod DecayFactor DoseCalibrationFactor Radiopharmaceutical
RadionuclideTotalDose RadionuclideHalfLife RadionuclidePositronFraction Units
DiffusionScheme MultibandAccelerationFactor ParallelReductionOutOfPlane CoilString
EchoTrainLength WaterFatShift EffectiveEchoSpacing PhilipsRescaleSlope PhilipsRescaleIntercept
PhilipsScaleSlope UsePhilipsFloatNotDisplayScaling NumberOfAverages PartialFourierDirection
ReceiveCoilName InversionTime SliceEncodingDirection
"""

#: free text typed by people (scan names, comments, task texts): kept only with --keep-descriptors
DESCRIPTORS = {
    "seriesdescription", "protocolname", "studydescription", "imagecomments", "taskdescription", "instructions",
    "description", "procedurestepdescription", "performedprocedurestepdescription", "labelinglocationdescription",
    "bodypartdetails", "sequencename", "pulsesequencedetails", "coilstring", "imagetypetext",
}


def _words(text: str) -> set:
    return {w.lower() for w in text.split()}


def allowed() -> set:
    """Every known key, lower case (BIDS, dcm2niix and medconv's own sidecar writer)."""
    keys = _words(_BIDS_MRI) | _words(_BIDS_PET) | _words(_DCM2NIIX)
    from ..dicom.sidecar import KEYS

    return keys | {key.lower() for key in KEYS}


#: keys whose object value is keyed by free labels (landmark names): kept when the labels look like
#: field names and the values are numbers
LABELLED = {"anatomicallandmarkcoordinates"}

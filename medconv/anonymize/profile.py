"""PS3.15 Annex E Table E.1-1: the Basic Application Level Confidentiality Profile.

Written from DICOM PS3.15 2023b (Annex E, Table E.1-1). One row per attribute:

    tag  keyword  basic-profile action  option columns

Actions: D dummy value, Z zero length, X remove, K keep, C clean, U replace UID;
combined codes (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) name the choices allowed by the IOD.
Option columns (letters) mark the rows an option changes; the action under that
option is K for U I A L and D, C for M (dates shifted) and for S T G (cleaned):

    U Retain UIDs             D Retain Device Identity   I Retain Institution Identity
    A Retain Patient Characteristics                    L Retain Long. Full Dates
    M Retain Long. Modified Dates                        S Clean Descriptors
    T Clean Structured Content                           G Clean Graphics

Repeating groups (50xx curves, 60xx overlays) and private elements are handled in
actions.py (always removed unless --keep-private).
"""
from __future__ import annotations

EDITION = "DICOM PS3.15 2023b, Annex E, Table E.1-1"

_TABLE = """
00080050 AccessionNumber Z T
00184000 AcquisitionComments X S
00080022 AcquisitionDate X/Z LM
0008002A AcquisitionDateTime X/Z/D LM
00181400 AcquisitionDeviceProcessingDescription X/D DS
00189424 AcquisitionProtocolDescription X S
00080032 AcquisitionTime X/Z LM
00080017 AcquisitionUID U U
00404035 ActualHumanPerformersSequence X
00101081 BranchOfService X
00101010 PatientAge X A
00380010 AdmissionID X
00102110 Allergies X
00080054 RetrieveAETitle X
00104000 PatientComments X S
00102000 MedicalAlerts X
00102180 Occupation X S
001021B0 AdditionalPatientHistory X S
00380500 PatientState X S
00101040 PatientAddress X
00101060 PatientMotherBirthName X
00101090 MedicalRecordLocator X
00101080 MilitaryRank X
00101005 PatientBirthName X
00101000 OtherPatientIDs X
00101001 OtherPatientNames X
00101002 OtherPatientIDsSequence X
00101030 PatientWeight X A
00101020 PatientSize X A
00101021 PatientSizeCodeSequence X A
00102160 EthnicGroup X A
00102154 PatientTelephoneNumbers X
00102155 PatientTelecomInformation X
001021C0 PregnancyStatus X A
001021A0 SmokingStatus X A
001021F0 PatientReligiousPreference X
00102203 PatientSexNeutered X/Z A
00100040 PatientSex Z A
00100030 PatientBirthDate Z
00100032 PatientBirthTime X
00100033 PatientBirthDateInAlternativeCalendar X
00100034 PatientDeathDateInAlternativeCalendar X
00100035 PatientAlternativeCalendar X
00100010 PatientName Z
00100020 PatientID Z
00100021 IssuerOfPatientID X
00100022 TypeOfPatientID X
00100024 IssuerOfPatientIDQualifiersSequence X
00100026 SourcePatientGroupIdentificationSequence X
00100027 GroupOfPatientsIdentificationSequence X
00100050 PatientInsurancePlanCodeSequence X
00100101 PatientPrimaryLanguageCodeSequence X
00100102 PatientPrimaryLanguageModifierCodeSequence X
00101050 InsurancePlanIdentification X
00101100 ReferencedPatientPhotoSequence X
00102150 CountryOfResidence X
00102152 RegionOfResidence X
00102297 ResponsiblePerson X
00102298 ResponsiblePersonRole X
00102299 ResponsibleOrganization X
00104000 PatientComments X S
00120010 ClinicalTrialSponsorName D
00120020 ClinicalTrialProtocolID D
00120021 ClinicalTrialProtocolName Z
00120030 ClinicalTrialSiteID Z
00120031 ClinicalTrialSiteName Z
00120040 ClinicalTrialSubjectID D
00120042 ClinicalTrialSubjectReadingID D
00120050 ClinicalTrialTimePointID Z
00120051 ClinicalTrialTimePointDescription X S
00120060 ClinicalTrialCoordinatingCenterName Z
00120071 ClinicalTrialSeriesID X
00120072 ClinicalTrialSeriesDescription X S
00120081 ClinicalTrialProtocolEthicsCommitteeName D
00120082 ClinicalTrialProtocolEthicsCommitteeApprovalNumber X
00080020 StudyDate Z LM
00080021 SeriesDate X LM
00080023 ContentDate Z/D LM
00080024 OverlayDate X LM
00080025 CurveDate X LM
00080030 StudyTime Z LM
00080031 SeriesTime X LM
00080033 ContentTime Z/D LM
00080034 OverlayTime X LM
00080035 CurveTime X LM
00080015 InstanceCoercionDateTime X LM
00080012 InstanceCreationDate X/D LM
00080013 InstanceCreationTime X/Z/D LM
00080014 InstanceCreatorUID U U
00080018 SOPInstanceUID U U
00080058 FailedSOPInstanceUIDList U U
00080080 InstitutionName X/Z/D I
00080081 InstitutionAddress X I
00080082 InstitutionCodeSequence X/Z/D I
00080090 ReferringPhysicianName Z
00080092 ReferringPhysicianAddress X
00080094 ReferringPhysicianTelephoneNumbers X
00080096 ReferringPhysicianIdentificationSequence X
0008009C ConsultingPhysicianName X
0008009D ConsultingPhysicianIdentificationSequence X
00080201 TimezoneOffsetFromUTC X LM
00081010 StationName X/Z/D D
00081030 StudyDescription X S
00081032 ProcedureCodeSequence X/Z S
0008103E SeriesDescription X S
00081040 InstitutionalDepartmentName X I
00081041 InstitutionalDepartmentTypeCodeSequence X I
00081048 PhysiciansOfRecord X
00081049 PhysiciansOfRecordIdentificationSequence X
00081050 PerformingPhysicianName X
00081052 PerformingPhysicianIdentificationSequence X
00081060 NameOfPhysiciansReadingStudy X
00081062 PhysiciansReadingStudyIdentificationSequence X
00081070 OperatorsName X/Z/D
00081072 OperatorIdentificationSequence X/D
00081080 AdmittingDiagnosesDescription X S
00081084 AdmittingDiagnosesCodeSequence X S
00081088 PyramidDescription X S
00081110 ReferencedStudySequence X/Z
00081111 ReferencedPerformedProcedureStepSequence X/Z/D
00081120 ReferencedPatientSequence X
00081140 ReferencedImageSequence X/Z/U*
00081155 ReferencedSOPInstanceUID U U
00081195 TransactionUID U U
00082111 DerivationDescription X S
00082112 SourceImageSequence X/Z/U*
00083010 IrradiationEventUID U U
00084000 IdentifyingComments X S
00089123 CreatorVersionUID U U
00100200 QualityControlSubject X
00100212 StrainDescription X S
00102201 PatientSpeciesDescription X A
00102202 PatientSpeciesCodeSequence X A
00102292 PatientBreedDescription X A
00102293 PatientBreedCodeSequence X A
00102294 BreedRegistrationSequence X A
00102295 BreedRegistrationNumber X
00101010 PatientAge X A
0016002B MakerNote X
0016004D CameraOwnerName X
0016004E LensSpecification X
0016004F LensMake X
00160050 LensModel X
00160051 LensSerialNumber X
00160070 GPSVersionID X
00160071 GPSLatitudeRef X
00160072 GPSLatitude X
00160073 GPSLongitudeRef X
00160074 GPSLongitude X
00160075 GPSAltitudeRef X
00160076 GPSAltitude X
00160077 GPSTimeStamp X
00160078 GPSSatellites X
00160079 GPSStatus X
0016007A GPSMeasureMode X
0016007B GPSDOP X
0016007C GPSSpeedRef X
0016007D GPSSpeed X
0016007E GPSTrackRef X
0016007F GPSTrack X
00160080 GPSImgDirectionRef X
00160081 GPSImgDirection X
00160082 GPSMapDatum X
00160083 GPSDestLatitudeRef X
00160084 GPSDestLatitude X
00160085 GPSDestLongitudeRef X
00160086 GPSDestLongitude X
00160087 GPSDestBearingRef X
00160088 GPSDestBearing X
00160089 GPSDestDistanceRef X
0016008A GPSDestDistance X
0016008B GPSProcessingMethod X
0016008C GPSAreaInformation X
0016008D GPSDateStamp X LM
0016008E GPSDifferential X
00181000 DeviceSerialNumber X/Z/D D
00181002 DeviceUID U DU
00181004 PlateID X D
00181005 GeneratorID X D
00181007 CassetteID X D
00181008 GantryID X D
00181009 UniqueDeviceIdentifier X D
0018100A UDISequence X D
0018100B ManufacturerDeviceClassUID U DU
00181030 ProtocolName X/D S
00181200 DateOfLastCalibration X LM
00181201 TimeOfLastCalibration X LM
00181202 DateTimeOfLastCalibration X LM
00182042 TargetUID U U
00183105 LesionNumber X
00189185 RespiratoryMotionCompensationTechniqueDescription X S
00189367 XRaySourceID X D
00189371 XRayDetectorID X D
00189373 XRayDetectorLabel X D
0018937B MultienergyAcquisitionDescription X S
0018990C ReferencedDefinedProtocolSequence X
0018937F DecompositionDescription X S
00189424 AcquisitionProtocolDescription X S
00189516 StartAcquisitionDateTime X/D LM
00189517 EndAcquisitionDateTime X/D LM
00189701 DecayCorrectionDateTime X/D LM
0018A002 ContributionDateTime X/D LM
0018A003 ContributionDescription X S
0018700A DetectorID X/D D
0018700C DateOfLastDetectorCalibration X LM
00181050 SpatialResolution K
0020000D StudyInstanceUID U U
0020000E SeriesInstanceUID U U
00200010 StudyID Z
00200027 PyramidLabel X S
00200052 FrameOfReferenceUID U U
00200200 SynchronizationFrameOfReferenceUID U U
00203401 ModifyingDeviceID X D
00203403 ModifiedImageDate X LM
00203404 ModifyingDeviceManufacturer X D
00203405 ModifiedImageTime X LM
00203406 ModifiedImageDescription X S
00204000 ImageComments X S
00209158 FrameComments X S
00209161 ConcatenationUID U U
00209164 DimensionOrganizationUID U U
00280303 LongitudinalTemporalInformationModified K
00281199 PaletteColorLookupTableUID U U
00281214 LargePaletteColorLookupTableUID U U
00284000 ImagePresentationComments X S
0032000A StudyStatusID X
0032000C StudyPriorityID X
00320012 StudyIDIssuer X
00320032 StudyVerifiedDate X LM
00320033 StudyVerifiedTime X LM
00320034 StudyReadDate X LM
00320035 StudyReadTime X LM
00321000 ScheduledStudyStartDate X LM
00321001 ScheduledStudyStartTime X LM
00321010 ScheduledStudyStopDate X LM
00321011 ScheduledStudyStopTime X LM
00321020 ScheduledStudyLocation X
00321021 ScheduledStudyLocationAETitle X
00321030 ReasonForStudy X S
00321032 RequestingPhysician X
00321033 RequestingService X
00321040 StudyArrivalDate X LM
00321041 StudyArrivalTime X LM
00321050 StudyCompletionDate X LM
00321051 StudyCompletionTime X LM
00321060 RequestedProcedureDescription X/Z S
00321066 ReasonForVisit X S
00321067 ReasonForVisitCodeSequence X S
00321070 RequestedContrastAgent X S
00324000 StudyComments X S
00380004 ReferencedPatientAliasSequence X
00380008 VisitStatusID X
00380010 AdmissionID X
00380011 IssuerOfAdmissionID X
00380014 IssuerOfAdmissionIDSequence X
00380016 RouteOfAdmissions X
0038001A ScheduledAdmissionDate X LM
0038001B ScheduledAdmissionTime X LM
0038001C ScheduledDischargeDate X LM
0038001D ScheduledDischargeTime X LM
0038001E ScheduledPatientInstitutionResidence X
00380020 AdmittingDate X LM
00380021 AdmittingTime X LM
00380030 DischargeDate X LM
00380032 DischargeTime X LM
00380040 DischargeDiagnosisDescription X S
00380050 SpecialNeeds X
00380060 ServiceEpisodeID X
00380061 IssuerOfServiceEpisodeID X
00380062 ServiceEpisodeDescription X S
00380064 IssuerOfServiceEpisodeIDSequence X
00380300 CurrentPatientLocation X
00380400 PatientInstitutionResidence X
00380500 PatientState X S
00400001 ScheduledStationAETitle X D
00400002 ScheduledProcedureStepStartDate X LM
00400003 ScheduledProcedureStepStartTime X LM
00400004 ScheduledProcedureStepEndDate X LM
00400005 ScheduledProcedureStepEndTime X LM
00400006 ScheduledPerformingPhysicianName X
00400007 ScheduledProcedureStepDescription X S
00400009 ScheduledProcedureStepID X
0040000B ScheduledPerformingPhysicianIdentificationSequence X
00400010 ScheduledStationName X D
00400011 ScheduledProcedureStepLocation X D
00400012 PreMedication X
00400241 PerformedStationAETitle X D
00400242 PerformedStationName X D
00400243 PerformedLocation X D
00400244 PerformedProcedureStepStartDate X LM
00400245 PerformedProcedureStepStartTime X LM
00400250 PerformedProcedureStepEndDate X LM
00400251 PerformedProcedureStepEndTime X LM
00400253 PerformedProcedureStepID X
00400254 PerformedProcedureStepDescription X S
00400275 RequestAttributesSequence X
00400280 CommentsOnThePerformedProcedureStep X S
00400310 CommentsOnRadiationDose X S
00400555 AcquisitionContextSequence X T
00401001 RequestedProcedureID X
00401002 ReasonForTheRequestedProcedure X S
00401004 PatientTransportArrangements X
00401005 RequestedProcedureLocation X
00401010 NamesOfIntendedRecipientsOfResults X
00401011 IntendedRecipientsOfResultsIdentificationSequence X
00401101 PersonIdentificationCodeSequence D
00401102 PersonAddress X
00401103 PersonTelephoneNumbers X
00401104 PersonTelecomInformation X
00401400 RequestedProcedureComments X S
00402001 ReasonForTheImagingServiceRequest X S
00402004 IssueDateOfImagingServiceRequest X LM
00402005 IssueTimeOfImagingServiceRequest X LM
00402008 OrderEnteredBy X
00402009 OrderEntererLocation X
00402010 OrderCallbackPhoneNumber X
00402011 OrderCallbackTelecomInformation X
00402016 PlacerOrderNumberImagingServiceRequest Z
00402017 FillerOrderNumberImagingServiceRequest Z
00402400 ImagingServiceRequestComments X S
00403001 ConfidentialityConstraintOnPatientDataDescription X
00404005 ScheduledProcedureStepStartDateTime X LM
00404008 ScheduledProcedureStepExpirationDateTime X LM
00404010 ScheduledProcedureStepModificationDateTime X LM
00404011 ExpectedCompletionDateTime X LM
00404023 ReferencedGeneralPurposeScheduledProcedureStepTransactionUID U U
00404025 ScheduledStationNameCodeSequence X D
00404027 ScheduledStationGeographicLocationCodeSequence X D
00404028 PerformedStationNameCodeSequence X D
00404030 PerformedStationGeographicLocationCodeSequence X D
00404034 ScheduledHumanPerformersSequence X
00404036 HumanPerformerOrganization X
00404037 HumanPerformerName X
00404050 PerformedProcedureStepStartDateTime X LM
00404051 PerformedProcedureStepEndDateTime X LM
00404052 ProcedureStepCancellationDateTime X LM
0040A027 VerifyingOrganization X
0040A073 VerifyingObserverSequence D
0040A075 VerifyingObserverName D
0040A078 AuthorObserverSequence X
0040A07A ParticipantSequence X
0040A07C CustodialOrganizationSequence X
0040A082 ParticipationDateTime X LM
0040A088 VerifyingObserverIdentificationCodeSequence Z
0040A110 DateOfDocumentOrVerbalTransactionTrial X LM
0040A112 TimeOfDocumentCreationOrVerbalTransactionTrial X LM
0040A120 DateTime X/D LM
0040A121 Date X/D LM
0040A122 Time X/D LM
0040A123 PersonName D
0040A124 UID U U
0040A13A ReferencedDateTime X/D LM
0040A160 TextValue X T
0040A171 ObservationUID U U
0040A172 ReferencedObservationUIDTrial U U
0040A192 ObservationDateTrial X LM
0040A193 ObservationTimeTrial X LM
0040A307 CurrentObserverTrial X
0040A352 VerbalSourceTrial X
0040A353 AddressTrial X
0040A354 TelephoneNumberTrial X
0040A358 VerbalSourceIdentifierCodeSequenceTrial X
0040A402 ObservationSubjectUIDTrial U U
0040A730 ContentSequence X T
0040DB0C TemplateExtensionOrganizationUID U U
0040DB0D TemplateExtensionCreatorUID U U
0040A030 VerificationDateTime D LM
0040A032 ObservationDateTime X/D LM
00420011 EncapsulatedDocument X
00440004 ApprovalStatusDateTime X LM
00440104 AssertionDateTime X LM
0044000B ProductExpirationDateTime X LM
00500020 DeviceDescription X S
0050001B ContainerComponentID X D
00640003 SourceFrameOfReferenceUID U U
00700001 GraphicAnnotationSequence D G
00700006 UnformattedTextValue X G
00700082 PresentationCreationDate X LM
00700083 PresentationCreationTime X LM
00700084 ContentCreatorName Z
00700086 ContentCreatorIdentificationCodeSequence X
0070031A FiducialUID U U
00701101 PresentationDisplayCollectionUID U U
00701102 PresentationSequenceCollectionUID U U
00880140 StorageMediaFileSetUID U U
00880200 IconImageSequence X
00880904 TopicTitle X
00880906 TopicSubject X
00880910 TopicAuthor X
00880912 TopicKeywords X
01000420 SOPAuthorizationDateTime X LM
04000100 DigitalSignatureUID X
04000105 DigitalSignatureDateTime X
04000115 CertificateOfSigner X
04000310 CertifiedTimestamp X
04000402 ReferencedDigitalSignatureSequence X
04000403 ReferencedSOPInstanceMACSequence X
04000404 MAC X
04000550 ModifiedAttributesSequence X
04000561 OriginalAttributesSequence X
04000562 AttributeModificationDateTime X LM
04000563 ModifyingSystem X
04000564 SourceOfPreviousValues X
04000565 ReasonForTheAttributeModification X
20300020 TextString X G
21000040 CreationDate X LM
21000050 CreationTime X LM
21000070 Originator X
21000140 DestinationAE X D
22000002 LabelText X
22000005 BarcodeValue X
30060002 StructureSetLabel D S
30060004 StructureSetName X S
30060006 StructureSetDescription X S
30060008 StructureSetDate X/D LM
30060009 StructureSetTime X/D LM
30060024 ReferencedFrameOfReferenceUID U U
30060026 ROIName Z S
30060028 ROIDescription X S
30060038 ROIGenerationDescription X S
30060085 ROIObservationLabel X S
300600A6 ROIInterpreter Z
300600C2 RelatedFrameOfReferenceUID U U
30080024 TreatmentControlPointDate X LM
30080025 TreatmentControlPointTime X LM
30080054 FirstTreatmentDate X LM
30080056 MostRecentTreatmentDate X LM
30080105 SourceSerialNumber X D
30080162 SafePositionExitDate X LM
30080164 SafePositionExitTime X LM
30080166 SafePositionReturnDate X LM
30080168 SafePositionReturnTime X LM
30080250 TreatmentDate X LM
30080251 TreatmentTime X LM
300A0002 RTPlanLabel D S
300A0003 RTPlanName X S
300A0004 RTPlanDescription X S
300A0006 RTPlanDate X/D LM
300A0007 RTPlanTime X/D LM
300A000E PrescriptionDescription X S
300A0013 DoseReferenceUID U U
300A0016 DoseReferenceDescription X S
300A0072 FractionGroupDescription X S
300A00B2 TreatmentMachineName X/D D
300A00C3 BeamDescription X S
300A00DD BolusDescription X S
300A0196 FixationDeviceDescription X S
300A01A6 ShieldingDeviceDescription X S
300A01B2 SetupTechniqueDescription X S
300A0216 SourceManufacturer X D
300A0608 TreatmentPositionGroupLabel X S
300A0609 TreatmentPositionGroupUID U U
300A0676 EquipmentFrameOfReferenceDescription X S
300A0700 TreatmentSessionUID U U
300A0736 TreatmentToleranceViolationDateTime X LM
300A0623 RadiationDoseInVivoMeasurementLabel X S
300A0741 InterlockDateTime X LM
300A067C RadiationGenerationModeLabel X S
300A0742 InterlockDescription X S
300A067D RadiationGenerationModeDescription X S
300A0783 InterlockOriginDescription X S
300A0785 ReferencedTreatmentPositionGroupUID U U
300C0113 ReasonForOmissionDescription X S
300C0127 BeamHoldTransitionDateTime X LM
300E0004 ReviewDate X LM
300E0005 ReviewTime X LM
300E0008 ReviewerName X
40000010 Arbitrary X
40004000 TextComments X
40080040 ResultsID X
40080042 ResultsIDIssuer X
40080100 InterpretationRecordedDate X LM
40080101 InterpretationRecordedTime X LM
40080102 InterpretationRecorder X
40080108 InterpretationTranscriptionDate X LM
40080109 InterpretationTranscriptionTime X LM
4008010A InterpretationTranscriber X
4008010B InterpretationText X
4008010C InterpretationAuthor X
40080111 InterpretationApproverSequence X
40080112 InterpretationApprovalDate X LM
40080113 InterpretationApprovalTime X LM
40080114 PhysicianApprovingInterpretation X
40080115 InterpretationDiagnosisDescription X
40080118 ResultsDistributionListSequence X
40080119 DistributionName X
4008011A DistributionAddress X
40080200 InterpretationID X
40080202 InterpretationIDIssuer X
40080300 Impressions X
40084000 ResultsComments X
FFFAFFFA DigitalSignaturesSequence X
FFFCFFFC DataSetTrailingPadding X
00080016 SOPClassUID K
00080060 Modality K
00080070 Manufacturer K
00081090 ManufacturerModelName K
00181020 SoftwareVersions X/D D
00081111 ReferencedPerformedProcedureStepSequence X/Z/D
00321031 RequestingPhysicianIdentificationSequence X
00400006 ScheduledPerformingPhysicianName X
00081084 AdmittingDiagnosesCodeSequence X S
00082111 DerivationDescription X S
0018A001 ContributingEquipmentSequence X D
00081000 NetworkID X D
00080092 ReferringPhysicianAddress X
00081040 InstitutionalDepartmentName X I
00101060 PatientMotherBirthName X
00102110 Allergies X
00380040 DischargeDiagnosisDescription X S
00120062 PatientIdentityRemoved K
00120063 DeidentificationMethod K
00120064 DeidentificationMethodCodeSequence K
00280301 BurnedInAnnotation K
00280302 RecognizableVisualFeatures K
"""


# medconv additions beyond Table E.1-1: free text and identifiers that the table does not
# name but that can carry names, places or narrative (stricter, never looser).
_EXTRA = """
00080051 IssuerOfAccessionNumberSequence X
00081125 ReferencedVisitSequence X
00102161 EthnicGroupCodeSequence X A
00384000 VisitComments X S
00400400 CommentsOnTheScheduledProcedureStep X S
00404009 HumanPerformerCodeSequence X
00380502 PatientClinicalTrialParticipationSequence X
00440106 AssertionComments X S
0022112C CalculationComment X S
00240044 CommentsOnPatientPerformanceOfVisualField X S
00660004 SurfaceComments X S
0074100C ContactDisplayName X
00741236 RequestingAE X
01000424 SOPAuthorizationComment X
30040006 DoseComment X S
300600C8 FrameOfReferenceTransformationComment X S
30080202 TreatmentStatusComment X S
300A0402 SetupImageComment X S
300A078C ReferencedPatientSetupPhotoSequence X
300A0794 PatientSetupPhotoDescription X S
30100019 AuthorIdentificationSequence X
3010005A RTPhysicianIntentNarrative X S
"""


def _parse():
    table = {}
    for line in (_TABLE + _EXTRA).strip().splitlines():
        parts = line.split()
        if not parts:
            continue
        tag = int(parts[0], 16)
        keyword, action = parts[1], parts[2]
        flags = parts[3] if len(parts) > 3 else ""
        table.setdefault(tag, (keyword, action, flags))
    return table


#: tag (int) -> (keyword, basic action, option letters)
TABLE = _parse()

# Option letter -> the action it gives a marked row.
OPTION_ACTION = {"U": "K", "D": "K", "I": "K", "A": "K", "L": "K", "M": "C", "S": "C", "T": "C", "G": "C"}


def effective_action(tag: int, options: set) -> str | None:
    """The action for `tag` with the enabled option letters, or None if not in the table.

    Options that retain (U D I A L) and that shift dates (M) override the basic action.
    Clean (S T G) means "keep after cleaning": medconv does not rewrite free text, so
    a clean option (--keep-descriptors) keeps the value as it is and says so in the
    output's DeidentificationMethod.
    """
    row = TABLE.get(tag)
    if row is None:
        return None
    _, action, flags = row
    for letter in flags:
        if letter in options:
            return "K" if letter in "UDIALSTG" else "C"
    return action
